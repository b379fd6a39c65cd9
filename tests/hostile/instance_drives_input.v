// A submodule's output port connected to an input.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  xsrc s(.o(a));
  assign y = a ^ b;
endmodule
module xsrc(output [7:0] o);
  assign o = 8'hxx;
endmodule
