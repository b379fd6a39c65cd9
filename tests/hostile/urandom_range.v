// Another RNG system function.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = $urandom_range(255);
endmodule
